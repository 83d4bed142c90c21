import Testing
@testable import Images

@Test func moduleIsNamed() {
    #expect(ImagesModule.name == "Images")
}
