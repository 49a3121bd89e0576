"""Pure builders of remote commands: each returns a shell script as text, built from data."""
