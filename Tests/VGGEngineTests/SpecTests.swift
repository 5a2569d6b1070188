import Vocabulary
import XCTest
@testable import VGGEngine

final class SpecTests: XCTestCase {
    /// Parameter counts of the four VGG configurations at 224×224 with 1000
    /// classes (the published figures: 133 M, 133 M, 138 M, 144 M).
    func testParameterCounts() {
        let expected: [VGGModel: Int] = [
            .vgg11: 132_863_336,
            .vgg13: 133_047_848,
            .vgg16: 138_357_544,
            .vgg19: 143_667_240,
        ]
        for model in VGGModel.allCases {
            let spec = NetworkSpec(model: model, imageSize: 224, classes: 1000, widthDivisor: 1)
            XCTAssertNoThrow(try spec.validate())
            XCTAssertEqual(spec.parameterCount, expected[model], "\(model)")
            // The count is the sum of the layers' weights and biases.
            XCTAssertEqual(spec.parameterCount, spec.layers.reduce(0) { $0 + $1.weightCount + $1.biasCount })
        }
    }

    /// The layer list of VGG-16: 13 convolutions, 5 poolings, 3 FC layers,
    /// 2 dropouts, in order, with the right shapes.
    func testVGG16LayerList() {
        let layers = NetworkSpec(model: .vgg16).layers
        XCTAssertEqual(layers.count, 13 + 5 + 3 + 2)
        XCTAssertEqual(layers.first, .conv(name: "conv1_1", inChannels: 3, outChannels: 64, height: 224, width: 224))
        XCTAssertEqual(layers[2], .maxPool(name: "pool1", channels: 64, height: 224, width: 224))
        XCTAssertTrue(layers.contains(.conv(name: "conv5_3", inChannels: 512, outChannels: 512, height: 14, width: 14)))
        XCTAssertTrue(layers.contains(.linear(name: "fc6", inFeatures: 7 * 7 * 512, outFeatures: 4096, relu: true)))
        XCTAssertEqual(layers.last, .linear(name: "fc8", inFeatures: 4096, outFeatures: 1000, relu: false))
        XCTAssertEqual(Set(layers.map(\.name)).count, layers.count, "layer names are unique")
        // Every layer's input is the previous layer's output.
        for (a, b) in zip(layers, layers.dropFirst()) {
            XCTAssertEqual(a.outputElementsPerImage, b.inputElementsPerImage, "\(a.name) -> \(b.name)")
        }
    }

    /// VGG-16 forward multiply-adds per 224×224 image, FLOPs, and the
    /// forward+backward FLOPs recomputed here from the layer shapes.
    func testVGG16FLOPs() {
        let spec = NetworkSpec(model: .vgg16, imageSize: 224, classes: 1000, widthDivisor: 1)
        XCTAssertEqual(spec.forwardMACsPerImage, 15_470_264_320)
        XCTAssertEqual(spec.forwardFLOPsPerImage, 2 * 15_470_264_320)

        // Independent count: a 3×3 SAME conv on h×w×c → h×w×k does h·w·9·c·k
        // multiply-adds, a linear i → o does i·o, pooling and dropout none.
        var macs: [Int] = []
        for layer in spec.layers {
            switch layer {
            case let .conv(_, c, k, h, w): macs.append(h * w * 3 * 3 * c * k)
            case let .linear(_, i, o, _): macs.append(i * o)
            case .maxPool, .dropout: macs.append(0)
            }
        }
        XCTAssertEqual(macs.reduce(0, +), 15_470_264_320)
        guard case .conv = spec.layers[0] else { return XCTFail("first layer is not a convolution") }
        // Forward, weight gradient and input gradient are one GEMM each of
        // the same size; the first conv computes no input gradient.
        let expected = 2 * 3 * macs.reduce(0, +) - 2 * macs[0]
        XCTAssertEqual(spec.forwardBackwardFLOPsPerImage, expected)
        print("vgg16 forward FLOPs/image \(spec.forwardFLOPsPerImage), forward+backward \(spec.forwardBackwardFLOPsPerImage)")
    }

    func testCountsScaleWithSpec() {
        // Width divisor 16 at 32×32: channels 4, 8, 16, 32, 32; hidden 256.
        let layers = tinySpec.layers
        XCTAssertEqual(layers.first, .conv(name: "conv1_1", inChannels: 3, outChannels: 4, height: 32, width: 32))
        XCTAssertTrue(layers.contains(.linear(name: "fc6", inFeatures: 32, outFeatures: 256, relu: true)))
        XCTAssertEqual(layers.last, .linear(name: "fc8", inFeatures: 256, outFeatures: 10, relu: false))
        let convs = [(3, 4), (4, 8), (8, 16), (16, 16), (16, 32), (32, 32), (32, 32), (32, 32)]
        let expected = convs.reduce(0) { $0 + 9 * $1.0 * $1.1 + $1.1 } + (32 * 256 + 256) + (256 * 256 + 256) + (256 * 10 + 10)
        XCTAssertEqual(tinySpec.parameterCount, expected)
    }

    private func assertInvalid(_ spec: NetworkSpec, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try spec.validate(), file: file, line: line) { error in
            guard let e = error as? EngineError, case let .invalid(message) = e else {
                return XCTFail("expected EngineError.invalid, got \(error)", file: file, line: line)
            }
            XCTAssertTrue(message.contains(fragment), "message \"\(message)\" lacks \"\(fragment)\"", file: file, line: line)
        }
        XCTAssertThrowsError(try Network(spec: spec, batch: 1), file: file, line: line) { error in
            XCTAssertTrue(error is EngineError, file: file, line: line)
        }
    }

    func testValidation() {
        assertInvalid(NetworkSpec(imageSize: 100), "image-size")
        assertInvalid(NetworkSpec(imageSize: 48), "image-size")
        assertInvalid(NetworkSpec(imageSize: 0), "image-size")
        assertInvalid(NetworkSpec(imageSize: -32), "image-size")
        assertInvalid(NetworkSpec(widthDivisor: 3), "width-divisor")
        assertInvalid(NetworkSpec(widthDivisor: 128), "width-divisor")
        assertInvalid(NetworkSpec(widthDivisor: 0), "width-divisor")
        assertInvalid(NetworkSpec(classes: 0), "classes")
        assertInvalid(NetworkSpec(classes: -1), "classes")

        XCTAssertNoThrow(try NetworkSpec(model: .vgg19, imageSize: 32, classes: 1, widthDivisor: 64).validate())
        XCTAssertNoThrow(try NetworkSpec(imageSize: 64, widthDivisor: 2).validate())
        XCTAssertThrowsError(try Network(spec: tinySpec, batch: 0)) { error in
            XCTAssertTrue(error is EngineError)
        }
    }
}
