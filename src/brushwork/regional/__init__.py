"""Regional style from words: masks from word maps, one style per named region.

* :mod:`.spec` parses region specs (``cow=rembrandt.jpg``, ``hill,sky=monet.jpg``,
  ``rest=photo``) and checks them against the caption before any model loads;
* :mod:`.masks` turns word maps into soft masks that partition the image (competition
  with a temperature, ``rest`` for what no word claims, minimum-area cleanup, feathering);
* :mod:`.apply` runs the regional transfer (Gatys with masked Gram targets; AdaIN with
  per-region statistics; WCT, WCT², PhotoWCT by blending) and keeps the photo where asked;
* :mod:`.generate` applies the regions during SDXL generation with IP-Adapter masks.
"""
