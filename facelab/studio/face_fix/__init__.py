"""The studio's face fixing page: dst frames without a face or with a suspicious one, and faces placed,
corrected, tracked from a neighbour or removed by hand (written through facelab.extract.manual)."""
