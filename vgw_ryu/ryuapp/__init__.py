"""The Ryu layer: the only package that imports Ryu (app, switch I/O, punts, encoding)."""
