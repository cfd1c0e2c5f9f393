"""Security primitives: no Flask, no database."""
