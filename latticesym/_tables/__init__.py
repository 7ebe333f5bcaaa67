"""Large derived tables shipped as package data, each beside the script that derives it.

* :mod:`latticesym._tables.niggli_neighbours`: the boundary-map set :math:`S` of the closed Niggli
  cone (1992 unimodular matrices), derived by ``python -m latticesym._tables.niggli_neighbours.derive``
  and certified by ``proofs/test_08_boundary_maps.py``.
"""
