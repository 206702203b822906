"""Tests of the loading stage."""
