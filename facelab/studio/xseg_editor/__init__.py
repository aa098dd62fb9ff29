"""The studio's XSeg editor backend: faceset browsing and saving (``facesets``), polygons from a predicted
mask and between faces (``polygons``), XSeg model folders and their train/apply commands (``models``)."""
