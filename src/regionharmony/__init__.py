"""Image harmonization with region-wise contrastive learning."""
