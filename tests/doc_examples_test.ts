// Every code example in the docs runs here: the fenced TypeScript and
// JavaScript blocks of JSDoc comments (`@example`) and of the Markdown files,
// each as its own module, all in this one test module.
//
// `deno test --doc` runs each example in a runtime of its own, and a new
// runtime costs about 0.3 s of CPU here: 167 examples took 50 s of the suite's
// CPU for what runs in 2 s in one. What `--doc` also did, type-checking the
// examples, `deno task test` does first with `deno check --doc`.
//
// The rules are `deno test --doc`'s: a block whose info string names ts,
// typescript, js, javascript, mjs, mts, tsx or jsx, unless it says `ignore`;
// each test is named FILE#FIRST-LAST after the lines of its fences. An example's relative imports are
// resolved from the file it documents.

const ROOT = new URL("../", import.meta.url);
/** Where the examples are written as modules (inside the project, so its import map applies). */
const OUT = new URL(".doctest/", ROOT);
const SKIP_DIRS = new Set([".git", ".scratch", ".doctest", "node_modules", ".ci", ".tmp"]);
const CODE = new Set(["ts", "typescript", "js", "javascript", "mjs", "mts", "tsx", "jsx"]);

interface Example {
  /** `path#first-last`, as `deno test --doc` names it. */
  name: string;
  file: URL;
  code: string;
  ext: string;
}

/** Files that may hold examples, relative to the root, sorted. */
async function sources(dir = ROOT, rel = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isDirectory && !SKIP_DIRS.has(e.name)) {
      out.push(...await sources(new URL(`${e.name}/`, dir), `${rel}${e.name}/`));
    } else if (e.isFile && /\.(ts|tsx|js|mjs|mts|md)$/.test(e.name)) {
      out.push(`${rel}${e.name}`);
    }
  }
  return out.sort();
}

/**
 * The fenced blocks of `text` (1-based line numbers of their fences),
 * `inJsDoc`: only inside `/** ... *\/` comments, with the leading ` * ` gone.
 */
function blocks(text: string, inJsDoc: boolean) {
  const lines = text.split("\n");
  const out: { info: string; first: number; last: number; code: string[] }[] = [];
  let inComment = !inJsDoc;
  let open: { info: string; first: number; code: string[] } | undefined;
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!;
    if (inJsDoc) {
      if (!inComment) {
        if (/^\s*\/\*\*/.test(line)) inComment = true;
        else continue;
      }
      if (line.includes("*/")) inComment = false;
      line = line.replace(/^\s*\/?\*+\/?\s?/, "");
    }
    const fence = /^\s*```(.*)$/.exec(line);
    if (fence && open === undefined) {
      open = { info: fence[1]!.trim(), first: i + 1, code: [] };
    } else if (fence && open !== undefined && fence[1]!.trim() === "") {
      out.push({ ...open, last: i + 2 }); // as deno names them: one past the closing fence
      open = undefined;
    } else if (open !== undefined) {
      open.code.push(line);
    }
    if (!inComment) open = undefined;
  }
  return out;
}

function examplesOf(path: string, text: string): Example[] {
  const markdown = path.endsWith(".md");
  const file = new URL(path, ROOT);
  const out: Example[] = [];
  for (const b of blocks(text, !markdown)) {
    const words = b.info.split(/\s+/).filter((w) => w !== "");
    if (words.includes("ignore")) continue;
    const lang = words[0] ?? "";
    if (!CODE.has(lang)) continue;
    // Relative imports (static and dynamic) resolve from the documented file.
    const code = b.code.join("\n").replace(
      /((?:from|import)\s*\(?\s*)(["'])(\.\.?\/[^"']*)\2/g,
      (_m, pre: string, q: string, spec: string) => `${pre}${q}${new URL(spec, file).href}${q}`,
    );
    const ext = lang === "typescript" ? "ts" : lang === "javascript" ? "js" : lang;
    out.push({ name: `./${path}#${b.first}-${b.last}`, file, code, ext });
  }
  return out;
}

const examples: Example[] = [];
for (const path of await sources()) {
  if (path.endsWith("_test.ts")) continue;
  examples.push(...examplesOf(path, await Deno.readTextFile(new URL(path, ROOT))));
}
await Deno.remove(OUT, { recursive: true }).catch(() => {});
await Deno.mkdir(OUT, { recursive: true });
const modules = await Promise.all(examples.map(async (e, i) => {
  const url = new URL(`${i}_${e.name.replace(/[^\w.-]+/g, "_")}.${e.ext}`, OUT);
  await Deno.writeTextFile(url, `${e.code}\n`);
  return url;
}));
globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(OUT, { recursive: true });
  } catch {
    // Already gone.
  }
});

Deno.test("doc examples: there are some, each names its file and lines", () => {
  if (examples.length < 100) throw new Error(`only ${examples.length} examples found`);
});

for (const [i, e] of examples.entries()) {
  Deno.test(e.name, async () => {
    await import(modules[i]!.href);
  });
}
