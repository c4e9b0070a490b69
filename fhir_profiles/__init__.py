"""OI-CDS knowledge artifacts (FHIR R4 JSON): packaged so an installed service finds them."""
