"""Scenarios shipped with simnet (package data): ``simnet run quickstart`` finds them by name."""
