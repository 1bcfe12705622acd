"""The drawing as the model should see it: normalization (pure OpenCV) and, for "why", heatmaps."""
