"""The operator tools, the local Functions host and the push simulator (`python -m sessions ...`).

Not published to Azure (.funcignore): nothing in function_app.py or sessions/ imports them.
"""
