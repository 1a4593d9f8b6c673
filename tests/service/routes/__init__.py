"""Tests of the route modules, one test module per router."""
