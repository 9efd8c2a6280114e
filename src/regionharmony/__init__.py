"""Image harmonization with region-wise contrastive learning."""

from regionharmony.cpu_threads import configure_cpu_threads

# before anything imports torch: libgomp reads OMP_* once, when it is loaded (see cpu_threads)
configure_cpu_threads()
