/// How a 3×3 stride-1 SAME convolution is lowered to sgemm.
///
/// - `im2col` (`"im2col"`): the reference. One GEMM `col[P, 9C] · W[9C, K]`
///   per chunk of output pixels; 9·C·K multiply-adds per output pixel.
/// - `winograd2` (`"winograd2x2"`): Winograd minimal filtering F(2×2, 3×3)
///   (Lavin & Gray 2015). 4×4 input tiles at stride 2; 16 GEMMs
///   `[tiles × C]·[C × K]` per chunk of tiles, one per transform-domain point:
///   16/4 = 4 multiply-adds per output pixel and channel pair instead of 9
///   (2.25× fewer). Rounding about that of im2col.
/// - `winograd4` (`"winograd4x4"`): F(4×4, 3×3). 6×6 input tiles at stride 4;
///   36 GEMMs per chunk: 36/16 = 2.25 multiply-adds instead of 9 (4× fewer),
///   with larger transform constants and so more rounding error than im2col
///   (`WinogradTests` bounds F(2×2), F(4×4) and F(6×6) against im2col).
/// - `winograd6` (`"winograd6x6"`): F(6×6, 3×3). 8×8 input tiles at stride 6;
///   64 GEMMs per chunk: 64/36 = 1.78 multiply-adds instead of 9 (5.06×
///   fewer), with larger constants still, so more rounding than F(4×4).
/// - `auto`: per layer, by `resolved(inChannels:height:width:)`: F(6×6) on
///   images whose short side is 112 pixels or more with at least 16 input
///   channels, else F(4×4) down to 8 pixels, F(2×2) for 4…7, im2col below.
///
/// An explicit algorithm applies to every convolution of the network, the
/// RGB layer included; `auto` is the fast choice.
public enum ConvAlgorithm: String, CaseIterable, Codable, Sendable {
    case im2col
    case winograd2 = "winograd2x2"
    case winograd4 = "winograd4x4"
    case winograd6 = "winograd6x6"
    case auto

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
