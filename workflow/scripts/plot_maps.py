"""Map figures of one image: estimates, truth/errors or differences from NLLS, residuals (rule plot_maps).

In vivo (no truth): the tissue regions of ``images.tissue`` (crbnn.images.regions.tissue_regions, a
classification of the coefficient image alone) are outlined.
"""

from pathlib import Path

from crbnn.common.io import read_nifti
from crbnn.common.logs import setup_logging
from crbnn.images.maps import read_coefficient_image, read_maps
from crbnn.images.regions import tissue_regions
from crbnn.report.map_plots import plot_map_panels, plot_residual_maps
from crbnn.report.plots import save_figure, set_style


def main(snakemake):
    log = setup_logging(snakemake.log)
    set_style(snakemake.params.font_scale)
    folder = Path(snakemake.input.maps[0]).parent.parent
    estimated = list(snakemake.config["model"]["estimated"])
    maps = {e: read_maps(folder / e, [*estimated, "residual"]) for e in snakemake.params.estimators}
    truth = None
    if "truth" in snakemake.input.keys():
        truth = {Path(p).name.removesuffix(".nii.gz"): read_nifti(p)[0] for p in snakemake.input.truth}
    regions = None
    if truth is None and "nlls" in maps:
        image = read_coefficient_image(snakemake.input.coefficients, snakemake.input.mask)
        spec = snakemake.params.tissue
        regions = tissue_regions(image.coefficients, image.mask, **spec["regions"])
    fig = plot_map_panels({e: m for e, m in maps.items()}, truth, parameters=estimated, regions=regions)
    save_figure(fig, snakemake.output.maps, dpi=snakemake.params.dpi)
    fig = plot_residual_maps({e: m["residual"] for e, m in maps.items()})
    save_figure(fig, snakemake.output.residual, dpi=snakemake.params.dpi)
    log.info("map figures of %s written", snakemake.wildcards.image)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
