"""Test doubles that ship with the package: fake provider servers speaking the real wire formats."""
