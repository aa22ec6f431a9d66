"""Reusable widgets. Each keeps its own DEFAULT_CSS; screens style layout in their .tcss files."""
