"""Retrieval: encode documents (teacher) and queries (student), exact search, runs."""
