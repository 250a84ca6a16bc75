# Sourced by the device scripts: `gpu_problem` prints why no GPU is usable and fails, or prints
# nothing and succeeds. The addon's own probe decides, as `--device auto` does.
gpu_problem() {
  node "$app/bin/ncsn-cuda.js" info --json 2>&1 | node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      let i; try { i = JSON.parse(s); } catch {
        const lines = s.trim().split("\n");
        console.log("ncsn-cuda info failed: " + (lines.find((l) => /^\w*Error: /.test(l)) ?? lines[0]));
        process.exit(1);
      }
      if (!i.devices.some((d) => d.usable)) { console.log(i.cuda.problem ?? "no usable GPU"); process.exit(1); }
    });'
}
