// Pages of the events table: fetched on demand, kept in a small LRU cache,
// one request per page at a time, and responses to an earlier selection
// (before a filter change) dropped.

/** A least-recently-used map with a fixed capacity. */
export class LruCache<K, V> {
  private readonly map = new Map<K, V>();
  constructor(readonly capacity: number) {
    if (capacity < 1) throw new RangeError("capacity must be at least 1");
  }
  get size(): number {
    return this.map.size;
  }
  has(key: K): boolean {
    return this.map.has(key);
  }
  /** Reads and marks as most recently used. */
  get(key: K): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }
  /** Reads without changing the order. */
  peek(key: K): V | undefined {
    return this.map.get(key);
  }
  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    while (this.map.size > this.capacity) {
      const oldest = this.map.keys().next().value as K;
      this.map.delete(oldest);
    }
  }
  clear(): void {
    this.map.clear();
  }
  keys(): K[] {
    return [...this.map.keys()];
  }
}

export interface Page<T> {
  total: number;
  rows: T[];
}

export type PageFetcher<T> = (page: number, pageSize: number) => Promise<Page<T>>;

/**
 * Loads pages for one selection at a time. `reset` starts a new selection:
 * the cache is emptied, and whatever was in flight for the old one is
 * ignored when it comes back.
 */
export class PagedLoader<T> {
  private cache: LruCache<number, Page<T>>;
  private inflight = new Map<number, Promise<void>>();
  private generation = 0;
  private fetcher: PageFetcher<T>;
  /** Total of the latest page received for the current selection. */
  total: number | undefined;
  /** The last error for the current selection, if any. */
  error: unknown;

  constructor(
    fetcher: PageFetcher<T>,
    readonly pageSize: number,
    capacity: number,
    private readonly onChange: () => void = () => {},
  ) {
    this.fetcher = fetcher;
    this.cache = new LruCache(capacity);
  }

  /** Starts a new selection, fetched by `fetcher` from now on. */
  reset(fetcher: PageFetcher<T> = this.fetcher): void {
    this.generation++;
    this.fetcher = fetcher;
    this.cache.clear();
    this.inflight.clear();
    this.total = undefined;
    this.error = undefined;
  }

  /** Number of requests in flight for the current selection. */
  get pending(): number {
    return this.inflight.size;
  }

  hasPage(page: number): boolean {
    return this.cache.has(page);
  }

  /** Row `index` if its page is loaded (marks the page as used). */
  row(index: number): T | undefined {
    const page = this.cache.get(Math.floor(index / this.pageSize));
    return page?.rows[index % this.pageSize];
  }

  /** Fetches `page` unless it is cached or already on its way. */
  load(page: number): Promise<void> {
    if (this.cache.has(page)) return Promise.resolve();
    const existing = this.inflight.get(page);
    if (existing) return existing;
    const gen = this.generation;
    const p = this.fetcher(page, this.pageSize).then(
      (result) => {
        if (gen !== this.generation) return; // an older selection: drop it
        this.inflight.delete(page);
        this.cache.set(page, result);
        this.total = result.total;
        this.error = undefined;
        this.onChange();
      },
      (err: unknown) => {
        if (gen !== this.generation) return;
        this.inflight.delete(page);
        this.error = err;
        this.onChange();
      },
    );
    this.inflight.set(page, p);
    return p;
  }
}
