import Foundation
import TestSupport
@testable import Trainer
import VGGEngine
import XCTest

/// The checkpoint file, written and read in process.
final class CheckpointTests: XCTestCase {
    func arenas(_ n: Int, seed: Float) -> (FloatArena, FloatArena) {
        let p = FloatArena(count: n), m = FloatArena(count: n)
        for i in 0..<n { p[i] = seed + Float(i) / 7; m[i] = -seed * Float(i % 13) }
        return (p, m)
    }

    func header(_ p: FloatArena) -> CheckpointHeader {
        var config = TrainConfig()
        config.batchPerRank = 2
        return Checkpoint.header(config: config, ranks: 3, nextStep: 11, parameters: p)
    }

    func testRoundTripIsBitwise() throws {
        let folder = Launcher.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let (p, m) = arenas(1000, seed: 0.5)
        try Checkpoint.write(to: folder.path, header: header(p), parameters: p, momentum: m)
        let (q, n) = arenas(1000, seed: 9)
        let read = try Checkpoint.read(from: folder.path, parameters: q, momentum: n)
        XCTAssertEqual(read, header(p))
        XCTAssertEqual(read.nextStep, 11)
        XCTAssertEqual(read.globalBatch, 6)
        XCTAssertEqual((0..<1000).map { q[$0] }, (0..<1000).map { p[$0] })
        XCTAssertEqual((0..<1000).map { n[$0] }, (0..<1000).map { m[$0] })
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), [Checkpoint.fileName],
                       "no temporary file is left beside it")
    }

    func testCorruptedTruncatedAndForeignFilesAreRefused() throws {
        let folder = Launcher.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let (p, m) = arenas(100, seed: 1)
        let path = folder.appendingPathComponent(Checkpoint.fileName).path
        let good = try Checkpoint.encode(header: header(p), parameters: p, momentum: m)
        func refused(_ data: Data, _ expected: String, line: UInt = #line) {
            _ = FileManager.default.createFile(atPath: path, contents: data)
            XCTAssertThrowsError(try Checkpoint.read(from: folder.path, parameters: p, momentum: m), line: line) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(error)", line: line)
            }
        }
        var flipped = good
        flipped[flipped.count / 2] ^= 1
        refused(flipped, "truncated or corrupted")
        refused(good.prefix(good.count - 100), "truncated or corrupted")
        refused(Data("not a checkpoint at all".utf8), "is not a vgg-dp checkpoint")
        let (small, smallM) = arenas(50, seed: 1)
        _ = FileManager.default.createFile(atPath: path, contents: good)
        XCTAssertThrowsError(try Checkpoint.read(from: folder.path, parameters: small, momentum: smallM)) { error in
            XCTAssertTrue("\(error)".contains("holds 100 parameters, this model has 50"), "\(error)")
        }
    }
}
