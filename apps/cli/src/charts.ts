/**
 * Charts for reports: a Vega-Lite spec is compiled to Vega, rendered headlessly to SVG (no canvas,
 * no browser, no network: vega's `toSVG`), and rasterised to PNG with sharp (librsvg).
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import sharp from 'sharp';
import { writeOutput } from './io';

export async function chartPng(spec: TopLevelSpec, file: string): Promise<void> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG(2); // scale 2: crisp text at the rendered size
  view.finalize();
  writeOutput(file, await sharp(Buffer.from(svg)).flatten({ background: '#ffffff' }).png({ compressionLevel: 9 }).toBuffer());
}

export interface Point { step: number; value: number; series: string }

/** A line chart of value against step, one line per series. */
export function lineSpec(points: Point[], title: string, yTitle: string, options: { zeroBased?: boolean } = {}): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title, width: 520, height: 220, background: 'white',
    data: { values: points },
    mark: { type: 'line', point: points.length < 40 },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'step' },
      y: { field: 'value', type: 'quantitative', title: yTitle, scale: { zero: Boolean(options.zeroBased) } },
      color: { field: 'series', type: 'nominal', title: null, legend: { orient: 'top' } },
      strokeDash: { field: 'series', type: 'nominal', title: null, legend: { orient: 'top' } },
    },
  } as TopLevelSpec;
}

/** Heat maps of the routing: per layer, rows = tasks, columns = experts, cell = share of tokens. */
export function routingSpec(rows: { layer: string; task: string; expert: string; share: number }[]): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Routing: fraction of tokens whose top-k includes each expert',
    background: 'white',
    data: { values: rows },
    facet: { column: { field: 'layer', type: 'nominal', title: null } },
    spec: {
      width: 200, height: 150,
      layer: [
        { mark: 'rect', encoding: {
          x: { field: 'expert', type: 'ordinal', title: 'expert' },
          y: { field: 'task', type: 'nominal', title: null },
          color: { field: 'share', type: 'quantitative', scale: { domain: [0, 1], scheme: 'blues' }, title: 'share' },
        } },
        { mark: { type: 'text', fontSize: 11 }, encoding: {
          x: { field: 'expert', type: 'ordinal' },
          y: { field: 'task', type: 'nominal' },
          text: { field: 'share', type: 'quantitative', format: '.2f' },
          color: { condition: { test: 'datum.share > 0.6', value: 'white' }, value: 'black' },
        } },
      ],
    },
  } as TopLevelSpec;
}
