// Which rows of a very long list to render. The list's scrollable height is
// total × rowHeight, capped at MAX_SCROLL_HEIGHT (browsers stop laying out
// elements somewhere between 15 and 33 million pixels): past the cap the
// scroll position is scaled, so the scroll bar still spans every row and
// rows keep their exact height on screen.

/** Below every current engine's limit on an element's height. */
export const MAX_SCROLL_HEIGHT = 15_000_000;

export interface WindowInput {
  total: number;
  rowHeight: number;
  /** Height of the visible area, in pixels. */
  viewport: number;
  /** The scroll container's scrollTop. */
  scrollTop: number;
  /** Extra rows rendered above and below the visible ones. */
  overscan?: number;
  maxHeight?: number;
}

export interface VirtualWindow {
  /** Height of the spacer that gives the scroll bar its range. */
  scrollHeight: number;
  /** total × rowHeight / scrollHeight: 1 unless the list is capped. */
  scale: number;
  /** First row rendered (inclusive) and last (exclusive). */
  start: number;
  end: number;
  /** Where row `start` is placed inside the spacer, in pixels. */
  offset: number;
  /** The first row (at least partly) visible, without overscan. */
  firstVisible: number;
}

export function virtualWindow(input: WindowInput): VirtualWindow {
  const { total, rowHeight } = input;
  const viewport = Math.max(0, input.viewport);
  const overscan = input.overscan ?? 8;
  const maxHeight = input.maxHeight ?? MAX_SCROLL_HEIGHT;
  const fullHeight = total * rowHeight;
  const scrollHeight = Math.min(fullHeight, maxHeight);
  if (total <= 0 || rowHeight <= 0) {
    return { scrollHeight: 0, scale: 1, start: 0, end: 0, offset: 0, firstVisible: 0 };
  }
  const maxScroll = Math.max(0, scrollHeight - viewport);
  const scrollTop = clamp(input.scrollTop, 0, maxScroll);
  // Position in the unscaled list: proportional to how far the bar is, so the
  // last row is reached exactly at the bottom.
  const fullMaxScroll = Math.max(0, fullHeight - viewport);
  const virtualTop = maxScroll > 0 ? (scrollTop / maxScroll) * fullMaxScroll : 0;
  const firstVisible = Math.min(total - 1, Math.floor(virtualTop / rowHeight));
  const visibleCount = Math.ceil(viewport / rowHeight) + 1;
  const start = Math.max(0, firstVisible - overscan);
  const end = Math.min(total, firstVisible + visibleCount + overscan);
  // Row i's top on screen is scrollTop + (i × rowHeight − virtualTop).
  const offset = scrollTop + (start * rowHeight - virtualTop);
  return { scrollHeight, scale: fullHeight / scrollHeight, start, end, offset, firstVisible };
}

/** The scrollTop that brings row `index` into view (minimal move), for keyboard navigation. */
export function scrollTopForRow(
  index: number,
  input: Omit<WindowInput, "overscan">,
): number {
  const { total, rowHeight, viewport } = input;
  const maxHeight = input.maxHeight ?? MAX_SCROLL_HEIGHT;
  const fullHeight = total * rowHeight;
  const scrollHeight = Math.min(fullHeight, maxHeight);
  const maxScroll = Math.max(0, scrollHeight - viewport);
  const fullMaxScroll = Math.max(0, fullHeight - viewport);
  if (fullMaxScroll === 0) return 0;
  const current = fullMaxScroll > 0 ? (clamp(input.scrollTop, 0, maxScroll) / maxScroll) * fullMaxScroll : 0;
  const rowTop = index * rowHeight;
  let target = current;
  if (rowTop < current) target = rowTop;
  else if (rowTop + rowHeight > current + viewport) target = rowTop + rowHeight - viewport;
  return clamp((target / fullMaxScroll) * maxScroll, 0, maxScroll);
}

/** The pages (of `pageSize` rows) that rows [start, end) fall in. */
export function pagesFor(start: number, end: number, pageSize: number): number[] {
  if (end <= start) return [];
  const first = Math.floor(start / pageSize);
  const last = Math.floor((end - 1) / pageSize);
  const out: number[] = [];
  for (let p = first; p <= last; p++) out.push(p);
  return out;
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}
