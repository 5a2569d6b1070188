import Vocabulary

/// The engine's side of `ConvAlgorithm` (Vocabulary): which algorithm a
/// layer runs, and its tile.
extension ConvAlgorithm {
    /// The algorithm a layer runs; never `auto`. An explicit algorithm is
    /// returned as it is, whatever the layer's shape. `auto` looks at the
    /// image's short side s = min(height, width) and the input channels C:
    /// - s ≥ 112 and C ≥ 16: F(6×6) (VGG at 224: conv1_2, conv2_1, conv2_2);
    /// - otherwise, s ≥ 8: F(4×4) (so the RGB layer, C = 3, at any s ≥ 8);
    /// - 4 ≤ s < 8: F(2×2) (a 4×4 tile would be mostly padding);
    /// - s < 4: im2col (a 3×3 convolution of a 1×1…3×3 image is mostly
    ///   padding in any tiling).
    /// The thresholds come from per-layer timings of VGG-16 at 224 on
    /// OpenBLAS's Haswell and SkylakeX kernels (the figures, dated, are in
    /// docs/ARCHITECTURE.md).
    public func resolved(inChannels c: Int, height h: Int, width w: Int) -> ConvAlgorithm {
        switch self {
        case .im2col, .winograd2, .winograd4, .winograd6: return self
        case .auto:
            let side = min(h, w)
            if side >= 112 && c >= 16 { return .winograd6 }
            return side >= 8 ? .winograd4 : side >= 4 ? .winograd2 : .im2col
        }
    }

    /// Output tile side m of F(m×m, 3×3); nil for im2col.
    var tile: Int? {
        switch self {
        case .winograd2: return 2
        case .winograd4: return 4
        case .winograd6: return 6
        case .im2col, .auto: return nil
        }
    }
}
