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
///   (the bounds `WinogradTests` checks).
/// - `winograd6` (`"winograd6x6"`): F(6×6, 3×3). 8×8 input tiles at stride 6;
///   64 GEMMs per chunk: 64/36 = 1.78 multiply-adds instead of 9 (5.06×
///   fewer), more rounding error again than F(4×4) (see `WinogradTests`).
/// - `auto`: chosen per layer from its shape by VGGEngine's
///   `resolved(inChannels:height:width:)`, which also says its rule.
///
/// An explicit algorithm applies to every convolution of the network, the
/// RGB layer included.
public enum ConvAlgorithm: String, CaseIterable, Codable, Sendable {
    case im2col
    case winograd2 = "winograd2x2"
    case winograd4 = "winograd4x4"
    case winograd6 = "winograd6x6"
    case auto
}
