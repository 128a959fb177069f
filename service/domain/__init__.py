"""Pure domain: no I/O, no clock reads, nothing but the standard library."""
