"""Models made by the condanon project (see models/README.md); installed as package data."""
