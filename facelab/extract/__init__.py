"""Extraction: frames -> aligned faces (FaceRecords), with multiprocess workers, landmark smoothing,
identity filtering, debug images, a resume journal and a summary."""
