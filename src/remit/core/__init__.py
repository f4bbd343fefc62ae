"""I/O-free building blocks shared by every service: ids, money, clock, errors, secrets."""
