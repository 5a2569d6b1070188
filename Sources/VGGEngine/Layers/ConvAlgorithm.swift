import Vocabulary

/// The engine's side of `ConvAlgorithm` (Vocabulary): which algorithm a
/// layer runs, and its tile.
extension ConvAlgorithm {
    /// The algorithm a layer runs; never `auto`.
    ///
    /// `auto`'s rule, from per-layer timings of VGG-16 at 224 (batch 4–16,
    /// one and two threads, OpenBLAS Haswell and SkylakeX kernels):
    /// - images of 112 pixels or more with at least 16 channels in: F(6×6).
    ///   On conv1_2, conv2_1 and conv2_2 (forward + backward, batch 16, one
    ///   thread) it beat F(4×4) by 12–15% on both kernels (SkylakeX: 840 /
    ///   336 / 542 ms against 971 / 403 / 641 ms). On smaller images it lost:
    ///   its 64 transformed 512×512 filters (64 MiB) are rewritten three times
    ///   a step, and 8×8 tiles pad 56, 28 and 14 more (conv4_2: 565 ms against
    ///   429 ms; whole network with F(6×6) everywhere: 5.96 s against 5.10 s).
    /// - other images at least 8 pixels on their short side: F(4×4). It beat
    ///   F(2×2) and im2col on every VGG-16 layer, the RGB layer included (C = 3,
    ///   batch 16, forward + backward: 215 ms against im2col's 288 ms on one
    ///   thread, 131 ms against 154 ms on two; F(6×6): 235 ms against 173 ms),
    ///   and on 14×14, where 4×4 tiles pad to 16×16 (31% wasted work, still
    ///   3× fewer multiplies than im2col; F(2×2) was 20% slower there).
    /// - 4 to 7 pixels: F(2×2) (a 4×4 tile would be mostly padding).
    /// - smaller: im2col (a 3×3 convolution of a 1×1…3×3 image is mostly
    ///   padding in any tiling).
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
