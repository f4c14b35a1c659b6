"""Task heads that sit on top of the ESM-2 backbone."""
