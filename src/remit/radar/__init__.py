"""Radar: risk scoring, rules and reviews before authorization, and the 3-D Secure step."""
