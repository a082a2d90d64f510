"""What the tests share besides fixtures: pushes as ChargePilot sends them, reading the tables
back, running the tools, the fuzzing strategies and the Bicep parse."""

from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent.parent
