"""The studio HTTP routes, one module per page."""
