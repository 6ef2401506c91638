"""Stage ``images``: numerical phantoms, parameter maps of images, and the ``crbnn`` command line.

* :mod:`crbnn.images.phantom`: vial and brain-like phantoms with known ground truth
* :mod:`crbnn.images.maps`: network and NLLS maps, sqrt(CRB) at the estimate, region statistics
* :mod:`crbnn.images.cli`: ``crbnn infer``, a trained network applied to a user's image
"""
