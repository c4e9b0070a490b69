"""The CDS Hooks HTTP face of OI-CDS."""
