"""Signal: Selective Interaction and Global-local Alignment for multi-modal object ReID."""
