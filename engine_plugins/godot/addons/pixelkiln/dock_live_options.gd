@tool
extends RefCounted
## The live panel's speed options: fast frames (raw RGBA8, no PNG encode), stream batch, the
## tiny autoencoder and similar-skip; and a line saying what the daemon applied to a frame.

const PK = preload("generated/pixelkiln_v1.gd")
const Widgets = preload("dock_widgets.gd")

var _fast: CheckBox
var _stream_batch: CheckBox
var _tiny: CheckBox
var _similar: SpinBox
var _applied: Label


## Adds the option rows to [param parent]; [param on_changed] runs when one changes.
func build(parent: Control, on_changed: Callable) -> void:
	_fast = Widgets.check("Fast frames (raw)", true)
	_stream_batch = Widgets.check("Stream batch", false)
	_tiny = Widgets.check("Tiny autoencoder", false)
	for box in [_fast, _stream_batch, _tiny]:
		box.toggled.connect(on_changed)
	Widgets.add_row(parent, "Live speed", [_fast, _stream_batch, _tiny])
	_similar = Widgets.spin(0.0, 1.0, 0.005, 0.0)
	_similar.tooltip_text = "Skip inputs closer than this to the last processed one (0: repeats)"
	_similar.value_changed.connect(on_changed)
	_applied = Widgets.label("")
	Widgets.add_row(parent, "Similar skip", [_similar, _applied])


## Writes the chosen options into [param settings].
func apply(settings: PK.LiveSettingsMsg) -> void:
	settings.output_encoding = (
		PK.Encoding.ENCODING_RAW_RGBA8 if _fast.button_pressed else PK.Encoding.ENCODING_PNG
	)
	settings.stream_batch = _stream_batch.button_pressed
	settings.tiny_autoencoder = _tiny.button_pressed
	settings.similar_skip_threshold = _similar.value


## Shows what the daemon applied to [param frame] (a model that cannot still answers without).
func show_applied(frame: PK.LiveFrameMsg) -> void:
	var parts := PackedStringArray()
	parts.append("stream batch " + ("on" if frame.stream_batch else "off"))
	parts.append("tiny AE " + ("on" if frame.tiny_autoencoder else "off"))
	if frame.graph_calls > 0:
		parts.append("recorded graphs (%d calls)" % frame.graph_calls)
	if frame.similar:
		parts.append("similar: skipped")
	_applied.text = "Applied: " + ", ".join(parts)


## The live source as RGBA8 pixels of [param side], or null when there is none: [param source] 0
## is [param texture] (a Texture2D or null), 1 and 2 the editor's 2D and 3D viewports.
static func capture(source: int, texture: Variant, editor: Object, side: Vector2i) -> Image:
	var image: Image = null
	if source == 0:
		if texture is Texture2D:
			image = (texture as Texture2D).get_image()
	elif source == 1:
		image = editor.get_editor_viewport_2d().get_texture().get_image()
	else:
		image = editor.get_editor_viewport_3d(0).get_texture().get_image()
	if image == null or image.is_empty():
		return null
	if image.is_compressed():
		image.decompress()
	image.convert(Image.FORMAT_RGBA8)
	image.resize(side.x, side.y, Image.INTERPOLATE_BILINEAR)
	return image
