"""Bird's-eye pictures of route runs: the drawing, and the PNG/GIF per run."""
