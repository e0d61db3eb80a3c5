"""The whole job in one command: samples -> frames -> faces -> model -> merge -> video, plus a picture."""
