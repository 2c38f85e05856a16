// Meta prints what pgJDBC's DatabaseMetaData answers, as GUI clients and
// BI tools (DBeaver, Metabase) ask it, and one query of PII. The test runs
// it direct and through pgveil and compares: usage: Meta URL USER PASSWORD.
import java.sql.*;
import java.util.*;

public class Meta {
    interface Call { ResultSet run(DatabaseMetaData m) throws SQLException; }

    static void dump(String label, ResultSet rs) throws SQLException {
        ResultSetMetaData md = rs.getMetaData();
        List<String> rows = new ArrayList<>();
        while (rs.next()) {
            StringBuilder b = new StringBuilder();
            for (int i = 1; i <= md.getColumnCount(); i++) {
                if (i > 1) b.append('|');
                b.append(md.getColumnLabel(i)).append('=').append(rs.getString(i));
            }
            rows.add(b.toString());
        }
        System.out.println("## " + label + " (" + rows.size() + " rows)");
        for (String r : rows) System.out.println(r);
    }

    public static void main(String[] a) throws Exception {
        Map<String, Call> calls = new LinkedHashMap<>();
        calls.put("getTables", m -> m.getTables(null, "public", "%", null));
        calls.put("getColumns", m -> m.getColumns(null, "public", "customers", "%"));
        calls.put("getPrimaryKeys", m -> m.getPrimaryKeys(null, "public", "customers"));
        calls.put("getIndexInfo", m -> m.getIndexInfo(null, "public", "customers", false, false));
        calls.put("getImportedKeys", m -> m.getImportedKeys(null, "public", "survey_responses"));
        calls.put("getExportedKeys", m -> m.getExportedKeys(null, "public", "customers"));
        calls.put("getFunctions", m -> m.getFunctions(null, "pg_catalog", "lower"));
        calls.put("getProcedures", m -> m.getProcedures(null, "pg_catalog", "upper"));
        calls.put("getSchemas", m -> m.getSchemas());
        calls.put("getCatalogs", m -> m.getCatalogs());
        calls.put("getTableTypes", m -> m.getTableTypes());
        calls.put("getTypeInfo", m -> m.getTypeInfo());
        calls.put("getUDTs", m -> m.getUDTs(null, "public", "%", null));
        calls.put("getTablePrivileges", m -> m.getTablePrivileges(null, "public", "customers"));
        try (Connection c = DriverManager.getConnection(a[0], a[1], a[2])) {
            DatabaseMetaData m = c.getMetaData();
            for (Map.Entry<String, Call> e : calls.entrySet()) {
                try (ResultSet rs = e.getValue().run(m)) {
                    dump(e.getKey(), rs);
                } catch (SQLException ex) {
                    System.out.println("## " + e.getKey() + " ERROR " + ex.getSQLState() + " " + ex.getMessage());
                }
            }
            try (Statement s = c.createStatement();
                 ResultSet rs = s.executeQuery("SELECT id, email, first_name FROM customers ORDER BY id")) {
                dump("select", rs);
            }
        }
    }
}
