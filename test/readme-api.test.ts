// README's "Library" section against the package's type declarations (dist/*.d.ts, as `npm pack`
// ships them), so that neither can change without the other: its code compiles, the options it
// lists for NcsnModel.create are the declared ones, and every export and method is described.
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, it, expect, beforeAll } from 'vitest';

const root = path.resolve(__dirname, '..');
const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
const library = readme.slice(readme.indexOf('\n## Library\n'), readme.indexOf('\n## ', readme.indexOf('\n## Library\n') + 1));
const prose = library.replace(/```[\s\S]*?```/g, '');
const blocks = [...library.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);
/** Every identifier in the code and in the prose's backticks. */
const mentioned = new Set(
  [...blocks, ...[...prose.matchAll(/`([^`]+)`/g)].map((m) => m[1])].flatMap((text) => text.match(/[A-Za-z_][A-Za-z0-9_]*/g) ?? []),
);

// The README's snippets and a probe of the declared types, compiled as modules of this package so
// that `import … from 'ncsn-cuda'` resolves through package.json's exports to dist/.
const scratch = path.join(root, 'build', 'readme-api');
const probe = `import { NcsnModel } from 'ncsn-cuda';
import * as api from 'ncsn-cuda';
export type CreateOptions = Parameters<typeof NcsnModel.create>[0];
export type Model = NcsnModel;
export type Api = typeof api;
`;

let program: ts.Program;
let snippetFiles: string[];
let probeFile: string;

/** The public properties of a type (a class's private members left out). */
function propertyNames(type: ts.Type): string[] {
  return program
    .getTypeChecker()
    .getPropertiesOfType(type)
    .filter((p) => !p.valueDeclaration || !(ts.getCombinedModifierFlags(p.valueDeclaration) & ts.ModifierFlags.Private))
    .map((p) => p.getName());
}

function exportedType(name: string): ts.Type {
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(probeFile)!;
  const symbol = checker.getExportsOfModule(checker.getSymbolAtLocation(source)!).find((s) => s.getName() === name)!;
  return checker.getDeclaredTypeOfSymbol(symbol);
}

describe('README API section', () => {
  beforeAll(() => {
    fs.mkdirSync(scratch, { recursive: true });
    snippetFiles = blocks.map((code, i) => {
      const file = path.join(scratch, `snippet-${i}.mts`);
      fs.writeFileSync(file, `${code}\nexport {};\n`);
      return file;
    });
    probeFile = path.join(scratch, 'probe.mts');
    fs.writeFileSync(probeFile, probe);
    program = ts.createProgram([...snippetFiles, probeFile], {
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      lib: ['lib.es2022.d.ts', 'lib.esnext.disposable.d.ts'],
      types: ['node'],
      typeRoots: [path.join(root, 'node_modules', '@types')],
      strict: true,
      noEmit: true,
      skipLibCheck: true,
    });
  }, 60_000);

  it('has code that compiles against the declarations', () => {
    expect(blocks.length).toBeGreaterThan(0);
    const problems = ts.getPreEmitDiagnostics(program).map((d) => {
      const where = d.file && d.start !== undefined ? `${path.basename(d.file.fileName)}:${d.file.getLineAndCharacterOfPosition(d.start).line + 1}: ` : '';
      return where + ts.flattenDiagnosticMessageText(d.messageText, '\n');
    });
    expect(problems).toEqual([]);
  });

  it("lists exactly NcsnModel.create's options", () => {
    const start = prose.indexOf('`NcsnModel.create(options)` takes');
    const paragraph = prose.slice(start, prose.indexOf('Training and sampling run', start));
    const listed = new Set([...paragraph.matchAll(/`([A-Za-z][A-Za-z0-9]*)`/g)].map((m) => m[1]));
    const checker = program.getTypeChecker();
    const options = exportedType('CreateOptions');
    const declared = propertyNames(options);
    // an option whose value is an object lists that object's fields beside it
    const nested = declared.flatMap((name) => {
      const type = checker.getNonNullableType(checker.getTypeOfSymbol(options.getProperty(name)!));
      return type.isClassOrInterface() || type.getFlags() & ts.TypeFlags.Object ? propertyNames(type) : [];
    });
    expect(declared.filter((name) => !listed.has(name))).toEqual([]);
    expect([...listed].filter((name) => !declared.includes(name) && !nested.includes(name) && name !== 'options')).toEqual([]);
  });

  it('describes every export and every method of NcsnModel', () => {
    const exports = propertyNames(exportedType('Api'));
    expect(exports.filter((name) => !mentioned.has(name))).toEqual([]);
    const members = propertyNames(exportedType('Model')).filter((name) => !name.startsWith('__@'));
    expect(members.filter((name) => !mentioned.has(name) && !library.includes(`.${name}`))).toEqual([]);
  });
});
