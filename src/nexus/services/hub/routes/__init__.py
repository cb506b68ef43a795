"""The Hub's pages, mounted at the root of the process (the APIs stay under /api/v1)."""
