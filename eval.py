r"""Rate-distortion evaluation of codecs on a dataset, from real bytes.

  python eval.py --data sample:photos --codecs jpeg,webp,avif,jpegxl,jpeg2000 --out out/photos

writes ``results.json`` (CompressAI-compatible keys), ``table.md`` and ``rd.png``
into ``--out``. ``--codecs`` takes classical codec names, shipped model names
(``python -m jaxcodec models``) and training workdirs. Images that cannot be read or
are smaller than 11x11 are skipped, each with a ``skipped ...`` line, and listed in the
report (``--noskip_bad`` stops at the first instead); a failed run leaves no ``--out``.
With ``--resume`` each measurement is recorded in ``--out`` as it is made, and the same
command run again after an interruption measures only what is missing; ``--qualities 1,4,8``
measures each codec at those of its qualities only (a slow refining encoder, say). ``--reference
out/val/results.json`` adds the curves of an earlier run on the same images without measuring
them again (``--anchors`` picks the codecs BD-rates are computed against)::

  python eval.py --data folder:photos/val --codecs runs/new_model --reference out/val/results.json \
      --anchors mbt2018-mean,jpeg --grid 0 --out out/val_new

With ``--codecs=`` (none) the report compares stored curves alone, reading no image::

  python eval.py --codecs= --reference out/val/results.json,out/val_new/results.json --out out/both
"""

import sys

from absl import app, flags, logging

flags.DEFINE_string("data", "sample:photos", "Dataset spec: tfds:NAME, folder:PATH, npz:PATH, sample:mnist, sample:photos.")
flags.DEFINE_list("codecs", ["jpeg", "webp", "avif", "jpegxl", "jpeg2000"], "Codecs, models or workdirs to evaluate.")
flags.DEFINE_string("out", "out/eval", "Folder for results.json, table.md and rd.png.")
flags.DEFINE_string("split", "test", "Split to evaluate on.")
flags.DEFINE_integer("limit", None, "Evaluate at most this many images.")
flags.DEFINE_string("fit_data", None, "Dataset whose train split fits codecs that need fitting (PCA); default --data.")
flags.DEFINE_string("data_dir", None, "TFDS data_dir (default: $TFDS_DATA_DIR or TFDS's default).")
flags.DEFINE_integer("grid", 8, "Images shown in grid.png (originals vs reconstructions); 0 for none.")
flags.DEFINE_bool("progress", True, "Show a progress bar.")
flags.DEFINE_list("match_bpp", None, "Rates (bpp) at which to measure every codec, each image at the quality "
                  "whose rate is closest, instead of each codec's own qualities.")
flags.DEFINE_bool("skip_bad", True, "Skip (and report) unreadable or too small images instead of stopping.")
flags.DEFINE_list("reference", [], "results.json files of earlier runs (or results/ tables) whose curves join the "
                  "report without being measured again, checked against these images.")
flags.DEFINE_list("anchors", None, "Codecs (evaluated or stored) to compute BD-rates against; default jpeg,webp,avif.")
flags.DEFINE_list("qualities", None, "Measure every codec at these of its own qualities only (e.g. 1,4,8 for a slow "
                  "refining encoder); a quality a codec lacks is an error before any work.")
flags.DEFINE_bool("resume", False, "Record each measurement in --out as it is made and reuse those already "
                  "recorded there: an interrupted evaluation, run again, picks up where it stopped.")
FLAGS = flags.FLAGS


def _qualities(values):
    """``--qualities`` as floats (None when not given); a bad value is a one-line error."""
    if values is None:
        return None
    try:
        return [float(v) for v in values]
    except ValueError:
        raise app.UsageError(f"--qualities takes numbers, got {','.join(values)}") from None


def _rates(values):
    """``--match_bpp`` as floats (None when not given); a bad value is a one-line error."""
    if not values:
        return None
    try:
        return [float(v) for v in values]
    except ValueError:
        raise app.UsageError(f"--match_bpp takes numbers, got {','.join(values)}") from None


def main(argv):
    del argv
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # keep Orbax's INFO lines out of the progress output
    from jaxcodec.runtime import allocator
    from jaxcodec.runtime import xla_cache
    from jaxcodec.errors import JaxcodecError
    from jaxcodec.eval.rate_distortion import run
    from jaxcodec.eval.report import markdown_table

    try:
        allocator.configure()  # before JAX starts its threads (see jaxcodec.runtime.allocator)
        xla_cache.enable()  # every quality of a ladder compiles the same programs per image size
        results = run(
            FLAGS.data, FLAGS.codecs, FLAGS.out, split=FLAGS.split, limit=FLAGS.limit,
            fit_data=FLAGS.fit_data, data_dir=FLAGS.data_dir, show_progress=FLAGS.progress, grid=FLAGS.grid,
            skip_bad=FLAGS.skip_bad, match_bpp=_rates(FLAGS.match_bpp), resume=FLAGS.resume,
            references=FLAGS.reference, anchors=FLAGS.anchors, qualities=_qualities(FLAGS.qualities),
        )
    except JaxcodecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(markdown_table(results))
    if results["skipped"]:
        print(f"skipped {len(results['skipped'])} of {results['num_images'] + len(results['skipped'])} images "
              "(listed above and in the report)")
    if FLAGS.resume:
        print(f"{results['resumed']} measurements taken from the journal in {FLAGS.out}")
    print(f"wrote {', '.join(results['paths'].values())}")
    return 0


if __name__ == "__main__":
    app.run(main)
