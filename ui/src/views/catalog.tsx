// "Catalogue": the GenAI services the agent recognises, and what each matches.
import { useMemo, useState } from "preact/hooks";

import { DataTable, type DataColumn } from "../components/DataTable";
import { SearchBox } from "../components/SearchBox";
import { ErrorBox } from "../components/ErrorBox";
import { ServiceAvatar } from "../components/ServiceAvatar";
import { useI18n } from "../i18n";
import { catalog } from "../ipc/commands";
import type { Service } from "../ipc/gen/Service";
import { formatNumber } from "../lib/format";
import { categoryName, countryName } from "../lib/rules";
import { useCommand } from "../lib/useCommand";

export function matchesService(s: Service, q: string): boolean {
  const needle = q.trim().toLowerCase();
  if (!needle) return true;
  return [s.id, s.name, s.vendor, s.category, s.jurisdiction, ...s.domains, ...s.hosts].some((v) =>
    v.toLowerCase().includes(needle),
  );
}

export function CatalogView() {
  const i18n = useI18n();
  const { t, locale } = i18n;
  const cat = useCommand(() => catalog(), []);
  const [search, setSearch] = useState("");
  const [selected, setSelected] = useState<string | null>(null);
  const shown = useMemo(() => (cat.data?.services ?? []).filter((s) => matchesService(s, search)), [cat.data, search]);
  const current = cat.data?.services.find((s) => s.id === selected) ?? null;

  if (cat.error !== undefined && !cat.data) return <ErrorBox error={cat.error} onRetry={cat.reload} />;
  if (!cat.data) return <p class="muted">{t("app.loading")}</p>;

  const columns: DataColumn<Service>[] = [
    {
      header: t("catalog.col.name"),
      cell: (s) => (
        <span class="service-cell">
          <ServiceAvatar id={s.id} name={s.name} size="sm" />
          {s.name}
        </span>
      ),
    },
    { header: t("catalog.col.vendor"), cell: (s) => s.vendor },
    { header: t("catalog.col.category"), cell: (s) => categoryName(s.category, i18n) },
    { header: t("catalog.col.jurisdiction"), title: (s) => countryName(s.jurisdiction, locale), cell: (s) => s.jurisdiction },
    {
      header: t("catalog.col.trains"),
      cell: (s) => <span class={`trains trains-${s.trains_on_inputs}`}>{t(`trains.${s.trains_on_inputs}`)}</span>,
    },
  ];

  return (
    <div class="catalog">
      <div class="catalog-list">
        <div class="toolbar">
          <span class="muted small">
            {t("catalog.intro", { n: formatNumber(cat.data.services.length, locale), version: cat.data.version })}
          </span>
          <span class="spacer" />
          <SearchBox label={t("catalog.search")} value={search} onChange={setSearch} />
        </div>
        <DataTable
          columns={columns}
          rows={shown}
          rowKey={(s) => s.id}
          rowTestId={() => "catalog-row"}
          onSelect={(s) => setSelected(s.id)}
          selectedKey={selected}
          scroll
          empty={t("catalog.empty")}
          headerWhenEmpty
        />
      </div>
      <aside class="detail panel" aria-labelledby="svc-detail-title" aria-live="polite">
        {current ? <ServiceDetail service={current} /> : <p class="muted">{t("catalog.select")}</p>}
      </aside>
    </div>
  );
}

function ServiceDetail({ service: s }: { service: Service }) {
  const i18n = useI18n();
  const { t, locale } = i18n;
  const list = (items: string[]) =>
    items.length ? (
      <ul class="plain mono">
        {items.map((d) => (
          <li key={d}>{d}</li>
        ))}
      </ul>
    ) : (
      t("app.none")
    );
  return (
    <>
      <div class="prompt-service">
        <ServiceAvatar id={s.id} name={s.name} />
        <div>
          <h2 id="svc-detail-title" class="service-name">
            {s.name}
          </h2>
          <div class="muted small">
            {s.vendor} · <span class="mono">{s.id}</span>
          </div>
        </div>
      </div>
      <dl class="facts">
        <div class="fact">
          <dt>{t("catalog.col.category")}</dt>
          <dd>{categoryName(s.category, i18n)}</dd>
        </div>
        <div class="fact">
          <dt>{t("catalog.col.jurisdiction")}</dt>
          <dd>
            {countryName(s.jurisdiction, locale)} ({s.jurisdiction})
          </dd>
        </div>
        <div class="fact">
          <dt>{t("catalog.col.trains")}</dt>
          <dd>{t(`trains.${s.trains_on_inputs}`)}</dd>
        </div>
        <div class="fact">
          <dt>{t("catalog.retention")}</dt>
          <dd>{s.retention ?? t("app.none")}</dd>
        </div>
        <div class="fact">
          <dt>{t("catalog.enterprise")}</dt>
          <dd>{s.enterprise_tier ?? t("app.none")}</dd>
        </div>
        <div class="fact">
          <dt>{t("catalog.domains")}</dt>
          <dd>{list(s.domains)}</dd>
        </div>
        <div class="fact">
          <dt>{t("catalog.hosts")}</dt>
          <dd>{list(s.hosts)}</dd>
        </div>
        <div class="fact">
          <dt>{t("catalog.shared")}</dt>
          <dd>{list(s.shared_domains)}</dd>
        </div>
        <div class="fact">
          <dt>{t("catalog.source")}</dt>
          <dd class="mono break">{s.source}</dd>
        </div>
        <div class="fact">
          <dt>{t("catalog.notes")}</dt>
          <dd>{s.notes ?? t("app.none")}</dd>
        </div>
      </dl>
    </>
  );
}
