"""Known reference statistics (known.json) and their documentation, installed as package data."""
