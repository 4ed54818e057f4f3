"""Builders and paths shared by several test modules (no tests here)."""
