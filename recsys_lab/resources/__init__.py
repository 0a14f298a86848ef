"""Files shipped with the package (persona files)."""
