"""Prompt templates of the thermostat example (a package so that they ship as package data)."""
