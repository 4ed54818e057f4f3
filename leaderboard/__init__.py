"""The Gradio CAP leaderboard, imported as ``capbench.leaderboard``.

Not built yet: it arrives with the leaderboard issue. ``capbench export`` already writes the CSV it will read.
"""
