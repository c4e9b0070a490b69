"""One module per CDS service: its discovery metadata and its handler."""
