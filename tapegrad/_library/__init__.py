"""tapegrad.library's parts (as torch._library): operator schemas and ATen's table."""
